"""The landing page: where each role starts."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from werkzeug.wrappers import Response

from web.context import current_user, login_required, nav_endpoints

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required()
def index() -> str | Response:
    user = current_user()
    if user is not None and user.role == "agent" and "agent_desk.desk" in nav_endpoints():
        return redirect(url_for("agent_desk.desk"))
    return render_template("home.html")

