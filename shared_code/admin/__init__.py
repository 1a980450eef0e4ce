"""Admin operations over the same core: status, verify ("nothing lost"), requeue-poison."""
