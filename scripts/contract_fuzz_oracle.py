#!/usr/bin/env python3
"""The independent oracle behind scripts/contract-fuzz.

Reads what schemathesis sent through the gateway (its VCR cassette) and what the sample API
received (the `sample-api --record` JSON lines), validates every received request against the
OpenAPI document with openapi-core (not portcullis's own validator), and prints the counts:

- sent: requests schemathesis sent through the gateway;
- rejected by the gateway: answered without reaching the upstream;
- reached upstream: recorded by the sample API;
- reached upstream but violating: recorded requests openapi-core finds invalid (parameters and
  body; security is the identity stage's concern, not the contract's). Must be 0;
- valid requests rejected: requests openapi-core finds valid (as sent by the client, security
  included) that the gateway refused. Counted apart: those valid only for a lenient reading
  (undeclared properties or query parameters, repeated form fields: refused by strict mode on
  purpose), those refused with 401/403 on an operation with a security requirement (credentials
  only an identity stage could verify), and schemathesis's positive-mode cases.

Requests and the recording are matched by the x-request-id the gateway puts on both the
upstream request and the client's response.

Exit status: 1 when a violating request reached the upstream or when MAX_VALID_REJECTED is set
and more valid requests than that were refused, 2 when the inputs are unusable or the oracle
missed the canary, else 0.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import sys
from urllib.parse import parse_qsl, urlsplit

import yaml
from jsonschema_path import SchemaPath
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request import validators as v
from openapi_core.validation.request.exceptions import MissingParameter, MissingRequestBody
from werkzeug.datastructures import Headers, ImmutableMultiDict


class Request:
    """The request protocol openapi-core validates."""

    def __init__(self, host_url, method, path, query, headers, content_type, body):
        self.host_url = host_url
        self.method = method.lower()
        self.path = path
        self.full_url_pattern = host_url + path
        self.content_type = content_type or ""
        self.body = body
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(query or "", keep_blank_values=True)),
            header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict(),
            path={},
        )


def validators_for(spec_dict, strict, security=False):
    spec = SchemaPath.from_dict(spec_dict)
    version = str(spec_dict.get("openapi", ""))
    if version.startswith("3.0"):
        classes = [v.V30RequestParametersValidator, v.V30RequestBodyValidator]
        classes += [v.V30RequestSecurityValidator] if security else []
    else:
        classes = [v.V31RequestParametersValidator, v.V31RequestBodyValidator]
        classes += [v.V31RequestSecurityValidator] if security else []
    return [cls(spec, forbid_unspecified_additional_properties=strict) for cls in classes]


def has_security(validator, request, spec_dict):
    """Whether the request's operation has a non-empty security requirement."""
    try:
        _, operation, _, _, _ = validator._find_path(request)
    except Exception:
        return False
    if "security" in operation:
        return any(len(req) > 0 for req in (operation / "security").read_value())
    return any(len(req) > 0 for req in spec_dict.get("security") or [])


def strict_extras(validator, request):
    """What the gateway's strict mode refuses beyond openapi-core's strict validation: undeclared
    query parameters, and a form field given more than once (read differently by different
    parsers)."""
    out = []
    try:
        path, operation, _, _, _ = validator._find_path(request)
    except Exception:
        return out
    declared = set()
    for owner in (path, operation):
        if "parameters" in owner:
            for param in owner / "parameters":
                if (param / "in").read_str() == "query":
                    declared.add((param / "name").read_str())
    for name in request.parameters.query.keys():
        if name not in declared:
            out.append(f"undeclared query parameter {name!r}")
    if request.content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        names = [k for k, _ in parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)]
        if len(names) != len(set(names)):
            out.append("form field given more than once")
    return out


def problems(validators, request):
    """Every reason openapi-core gives against `request` (empty when valid)."""
    out = []
    for validator in validators:
        try:
            for err in validator.iter_errors(request):
                # An optional body or parameter left out: the full validator of openapi-core
                # accepts it; the split validators used here still report it.
                if isinstance(err, (MissingRequestBody, MissingParameter)):
                    continue
                out.append(describe(err))
        except (UnicodeDecodeError, ValueError) as err:
            # openapi-core decodes the body before parsing it: a body that is not UTF-8 JSON.
            out.append(f"body not decodable as declared: {type(err).__name__}")
        except Exception as err:  # the oracle itself failing counts as a violation, loudly
            out.append(f"oracle error: {type(err).__name__}: {err}")
    # Both validators report an unknown path or method; keep one.
    return list(dict.fromkeys(out))


def describe(err):
    inner = getattr(err, "schema_errors", None) or []
    detail = "; ".join(getattr(e, "message", str(e))[:160] for e in inner[:3])
    text = f"{type(err).__name__}: {err}"
    cause = err.__cause__
    if cause is not None and not detail:
        inner = getattr(cause, "schema_errors", None) or []
        detail = "; ".join(getattr(e, "message", str(e))[:160] for e in inner[:3]) or str(cause)[:160]
    return f"{text} ({detail})" if detail else text


def header_value(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else value
    return None


def cassette_body(request):
    body = request.get("body") or {}
    if "base64_string" in body:
        return base64.b64decode(body["base64_string"])
    text = body.get("string")
    return text.encode() if isinstance(text, str) else b""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--recording", required=True)
    parser.add_argument("--cassette", required=True)
    parser.add_argument("--show", type=int, default=10, help="examples printed per problem list")
    parser.add_argument("--canary", help="request id of a violating request sent straight to the "
                        "upstream: the oracle must flag it (proof it is not blind); not counted")
    args = parser.parse_args()

    with open(args.spec) as f:
        spec_dict = yaml.safe_load(f)
    server = (spec_dict.get("servers") or [{"url": "http://127.0.0.1"}])[0]["url"].rstrip("/")
    lenient = validators_for(spec_dict, strict=False)
    strict = validators_for(spec_dict, strict=True)
    # Clients are judged on security too: a request without the credentials its operation
    # requires is not a valid one (the gateway refuses it when no identity stage vouches for it).
    client = validators_for(spec_dict, strict=False, security=True)

    with open(args.cassette) as f:
        cassette = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    interactions = [i for i in (cassette or {}).get("http_interactions") or [] if i.get("request")]
    recorded = []
    with open(args.recording) as f:
        for line in f:
            if line.strip():
                recorded.append(json.loads(line))
    if not interactions:
        print("contract-fuzz: the cassette holds no request; schemathesis did not run", file=sys.stderr)
        return 2

    if args.canary:
        canaries = [r for r in recorded if r.get("request_id") == args.canary]
        recorded = [r for r in recorded if r.get("request_id") != args.canary]
        if len(canaries) != 1:
            print(f"contract-fuzz: the canary request was recorded {len(canaries)} times, not once", file=sys.stderr)
            return 2
        c = canaries[0]
        body = base64.b64decode(c["body_b64"]) if c.get("body_b64") is not None else b""
        if not problems(lenient, Request(server, c["method"], c["path"], c.get("query"), c.get("headers") or {},
                                         c.get("content_type"), body)):
            print("contract-fuzz: the oracle found nothing wrong with the canary: it is blind", file=sys.stderr)
            return 2
        print(f"oracle canary: {c['method']} {c['path']}?{c.get('query')} flagged, as it must be")

    reached_ids = collections.Counter(r.get("request_id") for r in recorded)

    # What reached the upstream, judged as the upstream received it.
    violating, strict_violating = [], []
    for r in recorded:
        body = base64.b64decode(r["body_b64"]) if r.get("body_b64") is not None else b""
        req = Request(server, r["method"], r["path"], r.get("query"), r.get("headers") or {},
                      r.get("content_type"), body)
        found = problems(lenient, req)
        if found:
            violating.append((r, found))
        elif problems(strict, req):
            strict_violating.append((r, problems(strict, req)))

    # What the gateway refused, judged as the client sent it.
    sent = len(interactions)
    rejected = 0
    no_answer = 0
    statuses = collections.Counter()
    valid_rejected, strict_rejected, security_rejected, positive_rejected = [], [], [], []
    positive_sent = 0
    for i in interactions:
        request, response = i["request"], i.get("response")
        mode = ((i.get("generation") or {}).get("mode") or "").lower()
        positive_sent += mode == "positive"
        if response is None:
            no_answer += 1
            continue
        rid = header_value(response.get("headers"), "x-request-id")
        if rid in reached_ids:
            continue
        rejected += 1
        code = int((response.get("status") or {}).get("code") or 0)
        statuses[code] += 1
        url = urlsplit(request["uri"])
        req = Request(server, request["method"], url.path, url.query, {}, header_value(request.get("headers"), "content-type"),
                      cassette_body(request))
        headers = {k: (val[0] if isinstance(val, list) else val) for k, val in (request.get("headers") or {}).items()}
        req.parameters = RequestParameters(query=req.parameters.query, header=Headers(list(headers.items())),
                                           cookie=ImmutableMultiDict(), path={})
        if not problems(client, req):
            if code in (401, 403) and has_security(strict[0], req, spec_dict):
                security_rejected.append((request, code, response))
            elif problems(strict, req) or strict_extras(strict[0], req):
                strict_rejected.append((request, code, response))
            else:
                valid_rejected.append((request, code, response))
        if mode == "positive":
            positive_rejected.append((request, code, response))

    print("== contract-fuzz results")
    print(f"requests sent (schemathesis):           {sent}  (positive mode: {positive_sent})")
    print(f"rejected by the gateway:                {rejected}  (by status: {dict(sorted(statuses.items(), key=str))})")
    print(f"reached upstream (recorded):            {len(recorded)}")
    print(f"reached upstream but violating:         {len(violating)}  (openapi-core)")
    print(f"  ... violating only in strict mode:    {len(strict_violating)}  (undeclared properties allowed by the spec)")
    print(f"valid requests rejected (openapi-core): {len(valid_rejected)}")
    print(f"  ... plus valid but refused by strict mode: {len(strict_rejected)}  (undeclared properties or query parameters, repeated form fields)")
    print(f"  ... plus valid but unauthenticated:        {len(security_rejected)}  (credentials of a declared scheme, which only an identity stage could verify: none here)")
    print(f"positive-mode cases rejected:           {len(positive_rejected)}")
    if no_answer:
        print(f"sent without an answer (errors):        {no_answer}")

    def show(title, rows, fmt):
        if rows:
            print(f"-- {title} (first {min(args.show, len(rows))} of {len(rows)})")
            for row in rows[: args.show]:
                print("   " + fmt(row))

    show("violating requests that reached the upstream", violating,
         lambda row: f"{row[0]['method']} {row[0]['path']}{'?' + row[0]['query'] if row[0].get('query') else ''}: "
                     + " | ".join(row[1])[:240])
    def reason(resp):
        """The gateway's problem, compactly: each violation's pointer and reason."""
        body = resp.get("body") or {}
        text = body.get("string")
        if text is None and "base64_string" in body:
            text = base64.b64decode(body["base64_string"]).decode("utf-8", "replace")
        try:
            problem = json.loads(text or "")
            found = problem.get("violations") or []
            listed = "; ".join(f"{v.get('pointer')}: {v.get('reason')}" for v in found[:4])
            return f"{problem.get('title')}" + (f" [{listed}]" if listed else "")
        except (ValueError, AttributeError):
            return (text or "")[:160].replace("\n", " ")

    show("valid requests the gateway rejected", valid_rejected,
         lambda row: f"{row[0]['method']} {row[0]['uri']} -> {row[1]} {reason(row[2])}"[:400])

    failed = bool(violating)
    limit = os.environ.get("MAX_VALID_REJECTED")
    if limit is not None and len(valid_rejected) > int(limit):
        print(f"contract-fuzz: {len(valid_rejected)} valid requests rejected, more than MAX_VALID_REJECTED={limit}")
        failed = True
    if violating:
        print("contract-fuzz: FAIL: requests that violate the contract reached the upstream")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `| head`
        sys.exit(1)
