"""The four subgraphs of the customer-success graph, each compiled in its own module."""
