"""Training: soft-target losses and label smoothing (losses), the trainer (trainer)."""
