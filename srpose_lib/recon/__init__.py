"""Geometric reconstruction (supplementary §A): region geometry (``geometry``) and losses
(``losses``). The networks W and G live in :mod:`srpose_lib.models.reconstruction`, the
training stages in :mod:`srpose_lib.adapt.geometric`."""
