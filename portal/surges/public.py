"""Customer pages for known issues: read one, and follow it ("I'm affected too")."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.extensions import db, limiter
from portal.surges import known_bp, known_issues
from portal.surges.forms import FollowForm, UnfollowForm
from portal.surges.models import KnownIssue, ProblemFollower


def _issue(problem_id: int) -> KnownIssue:
    issue = db.session.get(KnownIssue, problem_id)
    if issue is None or not issue.active:
        abort(404)
    return issue


def _signed_in():
    return current_user if current_user.is_authenticated else None


@known_bp.route("/<int:problem_id>")
def show(problem_id: int):
    issue = _issue(problem_id)
    return render_template("surges/known_issue.html", issue=issue, form=FollowForm(),
                           signed_in=_signed_in())


def _follow_limit() -> str:
    return current_app.config["KNOWN_ISSUE_FOLLOW_RATE_LIMIT"]


@known_bp.post("/<int:problem_id>/follow")
@limiter.limit(_follow_limit)
def follow(problem_id: int):
    issue = _issue(problem_id)
    form = FollowForm()
    user = _signed_in()
    if form.validate_on_submit():
        email = user.email if user is not None else (form.email.data or "")
        if not email:
            form.email.errors = ["Enter your email address so we can tell you when it is fixed."]
        else:
            try:
                new = known_issues.follow(issue, email, user)
            except known_issues.KnownIssueError as exc:
                db.session.rollback()
                form.email.errors = [str(exc)]
            else:
                db.session.commit()
                flash("Thanks: we will email you when it is fixed." if new
                      else "You already follow this issue.", "success")
                return redirect(url_for("known_issues.show", problem_id=issue.problem_id))
    return render_template("surges/known_issue.html", issue=issue, form=form,
                           signed_in=user), 422


def _follower(token: str) -> ProblemFollower:
    follower = known_issues.follower_for(token)
    if follower is None:
        abort(404)
    return follower


@known_bp.route("/unfollow/<token>", methods=["GET", "POST"])
def unfollow(token: str):
    """The link in followers' emails: GET only asks (mail scanners follow links), the
    button's POST (with its CSRF token) unfollows."""
    follower = _follower(token)
    # Only the public text: the problem ticket itself is for staff.
    issue = db.session.get(KnownIssue, follower.problem_id)
    form = UnfollowForm()
    if form.validate_on_submit():
        known_issues.unfollow(follower)
        db.session.commit()
    status = 422 if form.is_submitted() and follower.unfollowed_at is None else 200
    return render_template("surges/unfollow.html", follower=follower, issue=issue, form=form,
                           token=token), status
