"""Graph logic: small async node functions `(state, runtime) -> partial update`; nodes never import graphs."""
