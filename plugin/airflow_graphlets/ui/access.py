"""Airflow edge: who is asking, what they may see and change, and cross-site request checks.

Identity and permissions come from Airflow's own auth manager (whatever the deployment uses:
the simple one, FAB, Keycloak...): the user is read from the same JWT the Airflow UI sends (the
``_token`` cookie or a bearer header), reading a DAG's graphlets needs GET on that DAG, an
override needs PUT on it (what editing the DAG needs). Forms carry a token signed with the API
server's secret and bound to the user, and cross-site posts are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from itsdangerous import BadSignature, URLSafeTimedSerializer

_CSRF_SALT = "airflow-graphlets-override"
CSRF_MAX_AGE = 8 * 3600  # a review page left open through a working day still posts


@dataclass(frozen=True)
class Viewer:
    """The signed-in Airflow user, and the auth manager that answers for them."""

    user: object
    name: str
    user_id: str
    auth_manager: object

    def can_read(self, dag_id: str) -> bool:
        return self._dag("GET", dag_id)

    def can_edit(self, dag_id: str) -> bool:
        return self._dag("PUT", dag_id)

    def readable_dags(self) -> set[str] | None:
        """None when the user may read every DAG, else the DAG ids they may read.

        With Airflow's multi-team mode a permission on "all DAGs" asked without details says
        nothing about other teams' DAGs, so there the answer is always the list Airflow gives
        (which weighs each DAG's team)."""
        if not _multi_team() and self.auth_manager.is_authorized_dag(method="GET", user=self.user):
            return None
        return set(self.auth_manager.get_authorized_dag_ids(user=self.user, method="GET"))

    def _dag(self, method: str, dag_id: str) -> bool:
        """Asked as Airflow's own API asks: the DAG and, in multi-team mode, the team owning it."""
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

        team = _team_of(dag_id) if _multi_team() else None
        return bool(self.auth_manager.is_authorized_dag(method=method, user=self.user,
                                                        details=DagDetails(id=dag_id, team_name=team)))


def _multi_team() -> bool:
    from airflow.configuration import conf

    return conf.getboolean("core", "multi_team", fallback=False)


def _team_of(dag_id: str) -> str | None:
    """The team owning ``dag_id`` (through its DAG bundle), ``None`` when no team does."""
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


async def current_viewer(request: Request) -> Viewer:
    """The FastAPI dependency every page uses: the Airflow user, or 401 when nobody signed in."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user

    bearer = None
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        from fastapi.security import HTTPAuthorizationCredentials

        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
    user = await get_user(request, None, bearer)  # raises 401/403 as Airflow's own API does
    return Viewer(user=user, name=str(user.get_name()), user_id=str(user.get_id()), auth_manager=get_auth_manager())


def _serializer() -> URLSafeTimedSerializer:
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback=None) or conf.get("api_auth", "jwt_secret", fallback=None)
    if not secret:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                            "Set [api] secret_key in airflow.cfg: the Graphlets forms are signed with it.")
    return URLSafeTimedSerializer(secret, salt=_CSRF_SALT)


def csrf_token(viewer: Viewer) -> str:
    """A token for the forms of one page, bound to the user and signed with the API server's secret."""
    return _serializer().dumps(viewer.user_id)


def check_same_origin(request: Request, viewer: Viewer, token: str | None) -> None:
    """Refuse a state-changing request that is not a form of ours posted by this user.

    Raises:
      HTTPException 403: cross-site origin, or a missing, foreign, forged or expired token.
    """
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-site request refused.")
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Request from another site refused.")
    try:
        owner = _serializer().loads(token or "", max_age=CSRF_MAX_AGE)
    except BadSignature:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "The form's security token is missing, expired or not valid: reload the page and retry.") from None
    if owner != viewer.user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "The form's security token belongs to another user: reload the page.")
