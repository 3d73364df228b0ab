"""The program: configuration, wiring of deps (app), the long-running roles, and the command line (cli/)."""
