"""``iam:SimulatePrincipalPolicy``, which moto does not implement, answered from moto's own IAM state.

The SageMaker Python SDK v3 validates the training role before it creates a job: it simulates a
list of ``*``-resource actions for the role and refuses the role when one is denied. Here each
action is evaluated against the policies the principal (a role or a user) really has in moto (its
inline policies and its attached managed policies, each statement matched by moto's own policy
evaluator): ``explicitDeny`` when a statement denies it, ``allowed`` when one allows it,
``implicitDeny`` otherwise, as the IAM policy simulator answers. Conditions, permissions
boundaries and organization policies are not evaluated. An unknown principal is
``NoSuchEntity``, as on AWS.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

OPERATION = "SimulatePrincipalPolicy"
_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"


def is_simulation(form: dict[str, list[str]]) -> bool:
    return form.get("Action", [""])[0] == OPERATION


def parse_form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _members(form: dict[str, list[str]], name: str) -> list[str]:
    """``ActionNames.member.1``, ``ActionNames.member.2``... in order."""
    numbered = {int(k.rsplit(".", 1)[1]): v[0] for k, v in form.items() if k.startswith(f"{name}.member.")}
    return [numbered[i] for i in sorted(numbered)]


def _principal_policies(account: str, arn: str) -> list[Any] | None:
    """The principal's policies as moto ``IAMPolicy`` objects (None: no such principal)."""
    from moto.iam.access_control import IAMPolicy
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["global"]
    parts = arn.split(":", 5)
    kind, _, path = (parts[5] if len(parts) == 6 else "").partition("/")
    name = path.rsplit("/", 1)[-1]
    if kind == "role":
        principal = next((r for r in backend.roles.values() if r.arn == arn or r.name == name), None)
    elif kind == "user":
        principal = backend.users.get(name)
    else:
        principal = None
    if principal is None:
        return None
    documents = list(principal.policies.values()) + [IAMPolicy(p) for p in principal.managed_policies.values()]
    return [d if isinstance(d, IAMPolicy) else IAMPolicy(d) for d in documents]


def decision(policies: list[Any], action: str, resource: str = "*") -> str:
    from moto.iam.access_control import PermissionResult

    results = [policy.is_action_permitted(action, resource) for policy in policies]
    if PermissionResult.DENIED in results:
        return "explicitDeny"
    return "allowed" if PermissionResult.PERMITTED in results else "implicitDeny"


def simulate(account: str, form: dict[str, list[str]]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The HTTP answer (status, headers, XML body) to one SimulatePrincipalPolicy call."""
    arn = form.get("PolicySourceArn", [""])[0]
    policies = _principal_policies(account, arn)
    request_id = str(uuid.uuid4())
    if policies is None:
        body = (f'<ErrorResponse xmlns="{_NAMESPACE}"><Error><Type>Sender</Type><Code>NoSuchEntity</Code>'
                f"<Message>The principal {escape(arn)} cannot be found.</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>")
        return "404 Not Found", [("Content-Type", "text/xml")], body.encode()
    resources = _members(form, "ResourceArns") or ["*"]
    members = []
    for action in _members(form, "ActionNames"):
        for resource in resources:
            members.append(f"<member><EvalActionName>{escape(action)}</EvalActionName>"
                           f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                           f"<EvalDecision>{decision(policies, action, resource)}</EvalDecision>"
                           "<MatchedStatements/><MissingContextValues/></member>")
    body = (f'<SimulatePrincipalPolicyResponse xmlns="{_NAMESPACE}"><SimulatePrincipalPolicyResult>'
            f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(members)}</EvaluationResults>"
            f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
            "</ResponseMetadata></SimulatePrincipalPolicyResponse>")
    return "200 OK", [("Content-Type", "text/xml")], body.encode()
