"""What every session state change announces, written to the outbox in the same transaction as the change."""

from shared.db.models import RuntimeSession
from shared.db.repositories.outbox import OutboxRepository
from shared.messaging.messages import SessionChanged, SessionEvent
from shared.messaging.topology import COMMANDS, EVENTS, SCHEDULER_ROUTING_KEY


async def announce_session_state(outbox: OutboxRepository, runtime_session: RuntimeSession) -> None:
    await outbox.add(
        EVENTS,
        f"session.{runtime_session.state}.{runtime_session.backend}",
        SessionEvent(
            session_id=runtime_session.id,
            backend=runtime_session.backend,
            mode=runtime_session.mode,
            state=runtime_session.state,
            accepting_jobs=runtime_session.accepting_jobs,
            reason=runtime_session.close_reason,
        ),
    )
    # The scheduler re-plans the backend at once (a closed or inactive session frees it).
    await outbox.add(
        COMMANDS,
        SCHEDULER_ROUTING_KEY,
        SessionChanged(session_id=runtime_session.id, backend=runtime_session.backend),
    )
