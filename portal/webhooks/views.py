"""Admin → Webhooks: endpoints, their delivery log, and resend / test / replay (plain forms,
no script needed)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from portal.auth.views import admin_required
from portal.db import utcnow
from portal.extensions import db
from portal.webhooks import bp, services
from portal.webhooks.forms import EndpointForm, ReplayForm
from portal.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@bp.route("/", methods=["GET", "POST"])
@admin_required
def index():
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            endpoint = services.create_endpoint(form.url.data, form.events.data,
                                                form.description.data or "", form.kind.data)
        except services.EndpointError as exc:
            form.url.errors = [*form.url.errors, str(exc)]
        else:
            db.session.commit()
            flash("Endpoint added. Its signing secret is on this page.", "success")
            return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id), code=303)
    return render_template("webhooks/index.html", form=form, endpoints=services.endpoints()), \
        400 if form.errors else 200


@bp.route("/<int:endpoint_id>", methods=["GET", "POST"])
@admin_required
def endpoint(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    form = EndpointForm(obj=endpoint if request.method == "GET" else None)
    if request.method == "GET":
        form.events.data = sorted(endpoint.event_set)
    elif form.validate_on_submit():
        try:
            services.update_endpoint(endpoint, url=form.url.data, events=form.events.data,
                                     description=form.description.data or "")
        except services.EndpointError as exc:
            form.url.errors = [*form.url.errors, str(exc)]
        else:
            db.session.commit()
            flash("Endpoint saved.", "success")
            return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id), code=303)
    status = request.args.get("status")
    if status not in {s.value for s in DeliveryStatus}:
        status = None
    return render_template(
        "webhooks/endpoint.html", endpoint=endpoint, form=form, replay=ReplayForm(),
        deliveries=services.deliveries(endpoint, status), status=status,
        secrets=services.signing_secrets(endpoint, utcnow()),
    ), 400 if form.errors else 200


def _done(endpoint: WebhookEndpoint, message: str):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id), code=303)


@bp.route("/<int:endpoint_id>/test", methods=["POST"])
@admin_required
def send_test(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    services.send_test(endpoint)
    return _done(endpoint, "A test event is on its way; refresh to see the result.")


@bp.route("/<int:endpoint_id>/rotate", methods=["POST"])
@admin_required
def rotate(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    services.rotate_secret(endpoint)
    return _done(endpoint, "New secret created. The old one keeps signing for 24 hours.")


@bp.route("/<int:endpoint_id>/toggle", methods=["POST"])
@admin_required
def toggle(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    services.update_endpoint(endpoint, enabled=not endpoint.enabled)
    return _done(endpoint, "Endpoint enabled." if endpoint.enabled else "Endpoint disabled.")


@bp.route("/<int:endpoint_id>/delete", methods=["POST"])
@admin_required
def delete(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    db.session.delete(endpoint)
    db.session.commit()
    flash("Endpoint deleted.", "success")
    return redirect(url_for("webhooks.index"), code=303)


@bp.route("/<int:endpoint_id>/replay", methods=["POST"])
@admin_required
def replay(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    form = ReplayForm()
    if not form.validate_on_submit():
        flash("Give the date and time to replay failed deliveries from.", "error")
        return redirect(url_for("webhooks.endpoint", endpoint_id=endpoint.id), code=303)
    count = services.replay_failed(endpoint, form.since.data)
    return _done(endpoint, f"{count} failed deliver{'y' if count == 1 else 'ies'} sent again.")


def _delivery(delivery_id: int) -> WebhookDelivery:
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        abort(404)
    return delivery


@bp.route("/deliveries/<int:delivery_id>")
@admin_required
def delivery(delivery_id: int):
    return render_template("webhooks/delivery.html", delivery=_delivery(delivery_id))


@bp.route("/deliveries/<int:delivery_id>/resend", methods=["POST"])
@admin_required
def resend(delivery_id: int):
    delivery = _delivery(delivery_id)
    services.resend(delivery)
    return _done(delivery.endpoint, "Sent again with the same webhook-id.")
