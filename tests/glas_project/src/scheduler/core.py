from fastapi import APIRouter

from orchestrator.core import MyOrchestrator
from task_scheduler.base import BaseScheduler


class MyScheduler(BaseScheduler):
    def __init__(self, orchestrator: MyOrchestrator, port: int) -> None:
        super().__init__(orchestrator, port)

        self.orchestrator: MyOrchestrator = orchestrator
        self.bind_logger_name("My Scheduler")

    def init_extra_routes(self) -> None:
        my_router = APIRouter(prefix="/my-prefix", tags=["My lab"])
        my_router.add_api_route("/hello", self.hello_route_handler)
        self.api.include_router(my_router)

    def _extends_orchestrator_routes(self) -> None:
        self.orchestrator_router.add_api_route("/nodes", self.node_names)

    def hello_route_handler(self):
        return {"message": "Hello World!"}

    def node_names(self):
        return [node.name for node in self.orchestrator.nodes]
