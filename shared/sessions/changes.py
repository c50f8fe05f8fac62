"""What every session state change announces, written to the outbox in the same transaction as the change."""

from shared.db.models import RuntimeSession
from shared.db.repositories.outbox import OutboxRepository
from shared.events.publishing import publish_owned_state_change
from shared.messaging.messages import SessionChanged
from shared.messaging.topology import COMMANDS, SCHEDULER_ROUTING_KEY


async def announce_session_state(outbox: OutboxRepository, runtime_session: RuntimeSession) -> None:
    await publish_owned_state_change(
        outbox,
        runtime_session,
        type="session.state_changed",
        session_id=runtime_session.id,
        mode=runtime_session.mode,
        state=runtime_session.state,
        accepting_jobs=runtime_session.accepting_jobs,
        reason=runtime_session.close_reason,
    )
    # The scheduler re-plans the backend at once (a closed or inactive session frees it).
    await outbox.add(
        COMMANDS,
        SCHEDULER_ROUTING_KEY,
        SessionChanged(session_id=runtime_session.id, backend=runtime_session.backend),
    )
