"""Transparency log: Merkle tree, signed notes, the on-disk log and its verifying client."""
