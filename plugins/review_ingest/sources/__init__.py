"""Where files come from and go: the data folder, claims on files, the SFTP transport, samples."""
