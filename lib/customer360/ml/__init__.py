"""Segmentation and churn models: training with MLflow tracking, a champion per region, batch scoring."""
