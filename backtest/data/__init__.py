"""Market-data readers, resampling and the synthetic sample-data generator."""
