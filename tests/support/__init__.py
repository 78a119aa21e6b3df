"""Test support: recording fakes, PostgreSQL helpers and local servers that speak real wire formats."""
