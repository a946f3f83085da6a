"""The `catalog` contracts against both sides: the local implementation
and the catalog service over in-process WSGI. Written by `turnout new-service catalog`;
add your own cases with the `side` fixture: each then holds for both, as the contract says."""

import pytest

from shims.registry import Resources
from shims.transport import WsgiTransport
from catalog_service.app import create_app
from bookshop.turnout_glue import REGISTRY

FEATURE = REGISTRY.feature("catalog")
BINDINGS = {binding.spec.name: binding for binding in FEATURE.bindings}


@pytest.fixture
def service():
    app = create_app({"SERVICE_TOKENS": False})
    app.config["TESTING"] = True
    return app


@pytest.fixture(params=["local", "remote"])
def side(request, service):
    """side("contract name") -> that contract's implementation on this side."""
    def implementation(contract):
        binding = BINDINGS[contract]
        if request.param == "remote":
            return binding.remote(WsgiTransport(service))
        return binding.local(Resources(settings=service.config, engine=None, routed={}))
    with service.app_context():
        yield implementation


@pytest.mark.parametrize("contract", sorted(BINDINGS))
def test_the_service_documents_every_method(service, contract):
    paths = service.test_client().get("/openapi.json").get_json()["paths"]
    for method in BINDINGS[contract].spec.methods:
        assert f"/rpc/{contract}/{method}" in paths


@pytest.mark.parametrize("contract", sorted(BINDINGS))
def test_the_service_refuses_a_call_missing_its_arguments_naming_one(service, contract):
    client = service.test_client()
    for method in BINDINGS[contract].spec.methods.values():
        required = [param.name for param in method.params if param.required]
        if required:
            response = client.post(f"/rpc/{contract}/{method.name}", json={"args": {}})
            assert response.status_code == 400
            assert response.get_json()["field"] in required
