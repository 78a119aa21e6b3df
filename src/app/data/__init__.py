"""Packaged data files: the sample book of accounts used by the demo and the embedded store."""
