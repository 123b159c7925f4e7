"""QKD networks: trusted-node networks of links, their model and planner.

This room may import ``qkd.physics``, ``qkd.postprocessing`` and ``qkd.delivery``; they never
import it.
"""
