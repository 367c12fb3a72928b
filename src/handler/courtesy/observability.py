"""One logger, one metrics object and one tracer for the whole function."""

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="courtesy")
metrics = Metrics(namespace="Courtesy", service="courtesy")
tracer = Tracer(service="courtesy")

# At DEBUG these libraries log request and response bodies and OAuth signing details:
# the credentials secret's value, tokens. Whatever level the function logs at, they
# only ever speak up for warnings.
for _library in ("botocore", "boto3", "urllib3", "requests_oauthlib", "oauthlib", "tweepy"):
    logging.getLogger(_library).setLevel(logging.WARNING)
