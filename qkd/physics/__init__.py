"""Link physics: sources, channels, detectors, protocols, eavesdroppers, decoy bounds and rates.

Hazmat: explicit parameters, no policy. ``qkd.simulate`` runs a whole link (this room's
``simulation`` module, which drives ``qkd.postprocessing`` over the detections it makes).
"""
