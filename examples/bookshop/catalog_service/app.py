"""The catalog service: the `catalog` feature, extracted by `turnout new-service`.

It answers the feature's contracts with the feature's own local implementation, so it
starts on the code (and the database) the monolith uses today. Route the feature to it
with `turnout flags set catalog shadow`, then `canary`, then `remote`.
"""

from shims.feature_service import feature_service

from bookshop.turnout_glue import REGISTRY


def create_app(config=None):
    return feature_service(REGISTRY, "catalog", config)
