"""Databases on servers (PostgreSQL, MariaDB): consistent copies, anonymisation in SQL, dumps for backups."""


def engine(kind: str):
    """The engine of a database kind ("postgresql", "mariadb": clouds.databases.engines); KeyError for another.

    Imported on first use: the engines load psycopg and PyMySQL (about 0.13 s), which a backup or a restore of
    files and SQLite databases alone never needs (`doppel backup`, and the backup bench, start that much sooner).
    """
    from clouds.databases.engines import ENGINES
    return ENGINES[kind]
