"""Fine-tuning recognisers on line-level ground truth (ALTO / PAGE XML). Imports torch lazily."""
