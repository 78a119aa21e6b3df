"""The review desk: a local web application where a CS team sees its book and reviews every draft (`csm desk`)."""
