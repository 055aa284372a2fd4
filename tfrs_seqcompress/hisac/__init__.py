"""HiSAC's offline parts: the items' frozen semantic vectors (``semantic``), the residual k-means
codebook over them (``codebook``, in memory; ``codebook_beam``, on a Beam runner). The layers that
read the codebook (semantic IDs, voting, soft routing, the encoder) are in ``layers.hisac``."""
