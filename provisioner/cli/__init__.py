"""The `envctl` command line: thin; parses, calls an engine or a library function, prints."""
