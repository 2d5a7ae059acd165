"""The session's Slurm cluster fixture (tests/slurm/slurm_cluster.py)."""

from slurm_cluster import slurm_cluster

__all__ = ["slurm_cluster"]
