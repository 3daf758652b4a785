"""E-mail notifications: a merchant's report on each of its files, the data team's digest of a
DAG run and its alert on a file left waiting. Each message is written to the ``outbox`` table
once per fact (``outbox``), built from plain values with no customer's address or name
(``messages``), and sent once an SMTP server accepts it (``sending``); ``stuck`` finds the
files left waiting."""
