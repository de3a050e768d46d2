"""`tongxin` command line: thin argument parsing over library functions."""
