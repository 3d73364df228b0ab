"""Databases on servers (PostgreSQL, MariaDB): consistent copies, anonymisation in SQL, dumps for backups."""
