"""gatepass: the library every gatepass service imports.

Today it holds what every service shares: RFC 9457 problem details (:mod:`gatepass.problems`),
structured logs with a request id (:mod:`gatepass.logs`) and a body-size limit
(:mod:`gatepass.limits`). Local token verification for edges lands here next.
"""

from gatepass.limits import BodySizeLimitMiddleware
from gatepass.logs import RequestContextMiddleware, configure_logging, request_id_var
from gatepass.problems import ProblemError, install_problem_handlers, problem_response

__all__ = [
    "BodySizeLimitMiddleware",
    "ProblemError",
    "RequestContextMiddleware",
    "configure_logging",
    "install_problem_handlers",
    "problem_response",
    "request_id_var",
]
