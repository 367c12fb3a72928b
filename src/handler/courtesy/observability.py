"""One logger, one metrics object and one tracer for the whole function."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="courtesy")
metrics = Metrics(namespace="Courtesy", service="courtesy")
tracer = Tracer(service="courtesy")
