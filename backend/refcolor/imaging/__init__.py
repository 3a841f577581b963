"""Image operations every colorizer shares: pixel conversions, line-art-guided upsampling,
finishing (colour match, flatten), and the split correspondence matching with pretrained features."""
