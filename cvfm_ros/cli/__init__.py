"""The `cvfm-ros` command line: one entry point, one module per subcommand."""
