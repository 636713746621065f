"""Users and organisations (read-only, `users:read`) and the report figures, for staff."""

from __future__ import annotations

import secrets

from flask import url_for
from sqlalchemy import select

from portal.agent.reports import ReportFilters, cached_report
from portal.api import representations as rep
from portal.api import schemas
from portal.api.core import Problem, blp, keyset_page, not_found, page_body, require, writes
from portal.auth.models import Organization, Role, User
from portal.auth.services import AccountError, create_user
from portal.extensions import db

TAG = ["People"]


@blp.route("/users", methods=["GET"])
@blp.doc(tags=TAG, summary="Users, newest first (staff)")
@blp.arguments(schemas.PageArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.UserPage)
def list_users(cursor=None, limit=25):
    require("users:read", staff=True)
    rows, next_cursor = keyset_page(select(User), User.created_at, User.id, cursor=cursor,
                                    limit=limit)
    return page_body([rep.user(u) for u in rows], next_cursor, "api.list_users")


@blp.route("/users", methods=["POST"])
@blp.doc(tags=TAG, summary="Create a customer (admins); they set a password by resetting it")
@writes
@blp.arguments(schemas.UserCreate)
@blp.response(201, schemas.UserOut)
def create_customer(data):
    require("users:write", admin=True)
    try:
        user = create_user(data["email"], data["name"], secrets.token_urlsafe(32),
                           Role.CUSTOMER)
    except AccountError as exc:
        raise Problem(409, str(exc), errors=[{"field": "email", "message": str(exc)}]) from None
    return rep.user(user), 201, {"Location": url_for("api.get_user", user_id=user.id)}


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.doc(tags=TAG, summary="One user (staff)")
@blp.response(200, schemas.UserOut)
def get_user(user_id: int):
    require("users:read", staff=True)
    user = db.session.get(User, user_id)
    if user is None:
        raise not_found("user")
    return rep.user(user)


@blp.route("/organizations", methods=["GET"])
@blp.doc(tags=TAG, summary="Organisations (staff)")
@blp.response(200, schemas.OrganizationList)
def list_organizations():
    require("users:read", staff=True)
    orgs = db.session.scalars(select(Organization).order_by(Organization.name))
    return {"data": [{"id": o.id, "name": o.name, "domain": o.domain,
                      "shares_tickets": o.shares_tickets} for o in orgs]}


@blp.route("/reports/summary", methods=["GET"])
@blp.doc(tags=["Reports"], summary="The report page's figures for a period (staff)")
@blp.arguments(schemas.ReportArgs, location="query", as_kwargs=True)
@blp.response(200, schemas.ReportOut)
def report_summary(**args):
    require("tickets:read", staff=True)
    query = {"start": args.get("start"), "end": args.get("end"), "group": args.get("group_id"),
             "assignee": args.get("assignee_id"), "priority": args.get("priority")}
    filters, problems = ReportFilters.from_args(
        {k: (v.isoformat() if hasattr(v, "isoformat") else str(v))
         for k, v in query.items() if v is not None})
    if problems:
        raise Problem(422, " ".join(problems))
    report = cached_report(filters)
    _header, rows = report.tables()["summary"]
    return {"start": filters.start.isoformat(), "end": filters.end.isoformat(),
            "summary": {name.replace(" ", "_").replace("(", "").replace(")", ""): value
                        for name, value in rows},
            "daily": [{"date": d.day.isoformat(), "created": d.created, "solved": d.solved,
                       "reopened": d.reopened, "backlog": d.backlog} for d in report.days]}
