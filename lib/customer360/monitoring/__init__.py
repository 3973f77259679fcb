"""Drift, segment shift, realized churn and fairness: the monitoring stage and its alerts."""
