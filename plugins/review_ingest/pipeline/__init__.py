"""One file through every stage (``ingest``), and the life of a claimed file around it: its end
(``claimed``), an SFTP inbox (``sftp_inbox``), failures that never stop the other files."""
