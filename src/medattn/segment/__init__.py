"""Segmentation track: U-Nets with attention (gates, the zoo in the decoder, CA-Net-style, a transformer
bottleneck), Dice + cross-entropy loss, per-image Dice / IoU / HD95 / ASD, joint augmentation, training loop."""
