from flask import render_template

from portal.kb import bp, public_bp


@public_bp.route("/")
def index():
    return render_template("kb/home.html")


@bp.route("/")
def home():
    return render_template("kb/home.html")


@bp.route("/articles/<int:article_id>-<slug>")
def article(article_id: int, slug: str):
    return render_template("kb/home.html")
