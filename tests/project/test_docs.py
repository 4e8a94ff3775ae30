"""docs/deploy-agentcore.md, checked as far as possible without AWS.

Its heredocs are run by bash with the guide's own variables (only the account id,
which needs AWS, is given here), and the documents they write are checked: the
runtime request against the AgentCore API model that ships with botocore, the
settings against rlm-mcp's own validation, the IAM policy against the store and
models the runtime is given.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from rlm_mcp.aws import parse_s3_url
from rlm_mcp.config import ENV_PREFIX, Settings, setting_for_env

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy-agentcore.md"
ACCOUNT = "123456789012"


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the guide's variable exports and heredocs; return the JSON documents they write."""
    stand_ins = {  # what needs AWS (or randomness) to compute
        "ACCOUNT_ID": ACCOUNT,
        "ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/$ROLE_NAME",
        "REQUEST_STATE_KEY": "ab" * 32,
        "USER_POOL_ID": "us-east-1_AbCdEfGhI",
        "APP_CLIENT_ID": "1example23456789abcdefghij",
    }
    script = ["set -euo pipefail"]
    for block in bash_blocks():
        lines = iter(block.replace("\\\n", " ").splitlines())
        for line in lines:
            if re.match(r"cat > [\w.-]+ <<EOF$", line):
                body = [line]
                for more in lines:
                    body.append(more)
                    if more == "EOF":
                        break
                script.append("\n".join(body))
            elif line.startswith("export "):
                name = line.split()[1].split("=")[0]
                if name in stand_ins:
                    script.append(f"export {name}={stand_ins[name]}")
                elif "$(" not in line:
                    script.append(line)
    directory = tmp_path_factory.mktemp("guide")
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=directory, check=True, timeout=300)
    return {path.name: json.loads(path.read_text()) for path in directory.glob("*.json")}


def test_every_document_the_guide_writes_is_json(written: dict[str, Any]) -> None:
    assert set(written) == {
        "trust-policy.json",
        "role-policy.json",
        "transaction-search-policy.json",
        "create-runtime.json",
        "create-runtime-jwt.json",
    }


@pytest.mark.parametrize("document", ["create-runtime.json", "create-runtime-jwt.json"])
def test_the_runtime_request_matches_the_agentcore_api(written: dict[str, Any], document: str) -> None:
    request = written[document]
    model = botocore.session.get_session().get_service_model("bedrock-agentcore-control")
    shape = model.operation_model("CreateAgentRuntime").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert request["protocolConfiguration"] == {"serverProtocol": "MCP"}
    assert request["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"].startswith(
        f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/rlm-mcp:"
    )


def test_each_runtime_says_how_callers_are_authenticated(written: dict[str, Any]) -> None:
    """The container serves 0.0.0.0: IAM mode waives rlm-mcp's own check explicitly; JWT mode verifies the token
    the platform forwards, against the issuer the platform's authorizer uses."""
    iam = written["create-runtime.json"]
    assert "authorizerConfiguration" not in iam
    assert Settings(**_settings_of(iam)).allow_unauthenticated
    users = written["create-runtime-jwt.json"]
    settings = Settings(**_settings_of(users))
    assert not settings.allow_unauthenticated
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEfGhI"
    authorizer = users["authorizerConfiguration"]["customJWTAuthorizer"]
    assert settings.auth_issuer == issuer  # what rlm-mcp checks is what the platform's authorizer trusts
    assert authorizer["discoveryUrl"] == f"{issuer}/.well-known/openid-configuration"
    assert authorizer["allowedClients"] == settings.auth_audience == ["1example23456789abcdefghij"]
    assert users["requestHeaderConfiguration"] == {"requestHeaderAllowlist": ["Authorization"]}


def _settings_of(request: dict[str, Any]) -> dict[str, str]:
    variables = request["environmentVariables"]
    return {name: value for key, value in variables.items() if (name := setting_for_env(key)) is not None}


def test_the_runtime_settings_are_valid_rlm_mcp_settings(written: dict[str, Any]) -> None:
    variables = written["create-runtime.json"]["environmentVariables"]
    ours = {name: value for name, value in variables.items() if name.startswith(ENV_PREFIX)}
    assert all(setting_for_env(name) for name in ours), [name for name in ours if not setting_for_env(name)]
    settings = Settings(**{setting_for_env(name): value for name, value in ours.items()})
    assert settings.store == "s3://rlm-mcp-123456789012-us-east-1/rlm"
    assert settings.traces == "otlp" and settings.log_format == "json" and len(settings.request_state_keys) == 1
    assert variables["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "https://xray.us-east-1.amazonaws.com/v1/traces"


def test_the_role_allows_the_store_the_models_and_nothing_wider(written: dict[str, Any]) -> None:
    trust = written["trust-policy.json"]["Statement"][0]
    assert trust["Principal"] == {"Service": "bedrock-agentcore.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT

    statements = {s["Sid"]: s for s in written["role-policy.json"]["Statement"]}
    variables = written["create-runtime.json"]["environmentVariables"]
    bucket, prefix = parse_s3_url(variables["RLM_STORE"])
    assert statements["StoreObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}/*"
    assert statements["StoreListing"]["Condition"]["StringLike"]["s3:prefix"] == [f"{prefix}/*"]
    models = statements["Models"]
    assert models["Action"] == "bedrock:InvokeModel"
    for model in (variables["RLM_ROOT_MODEL"], variables["RLM_SUB_MODEL"]):
        assert f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/{model}" in models["Resource"]
        assert f"arn:aws:bedrock:*::foundation-model/{model.split('.', 1)[1]}" in models["Resource"]
    wildcard_resources = {sid for sid, s in statements.items() if s["Resource"] == "*"}
    assert wildcard_resources == {"EcrToken", "Traces", "Metrics"}  # actions that take no resource


def test_the_files_the_guide_points_to_exist() -> None:
    text = GUIDE.read_text()
    for path in set(re.findall(r"`((?:tests|scripts)/[\w./]+\.py)`", text)) | {"scripts/agentcore_client.py"}:
        assert (ROOT / path).is_file(), path
    assert "docs/deploy-agentcore.md" in (ROOT / "README.md").read_text()
