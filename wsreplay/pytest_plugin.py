"""pytest plugin: collect ``.wsr`` scenario files as tests (registered as ``pytest11``)."""
