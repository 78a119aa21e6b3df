"""Repository source root: the application package is `src.app`."""
