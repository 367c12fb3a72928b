"""`make bench`: what Courtesy costs, measured against the local X sandbox and moto.

Runs the real handler for simulated days, side by side with two reference
strategies on the same traffic, then measures the handler module's cold start.
"""
