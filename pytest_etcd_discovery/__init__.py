"""pytest-etcd-discovery: a faithful fake of the etcd discovery service for pytest."""
