"""Object stores for backups, independent of the production's cloud: local directory, Swift, S3."""
