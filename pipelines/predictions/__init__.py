"""The prediction log from the pipeline's side: its database, labelled production rows
collected into the next training set, and expired rows pruned."""
