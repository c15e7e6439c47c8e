"""Domain adaptation methods: UniFrame's mean teacher (the paper's Baseline), integrated
2D+3D pseudo-labelling, and (later) geometric reconstruction."""
