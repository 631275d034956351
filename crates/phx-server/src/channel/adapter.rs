//! Every [`Channel`] as the socket drives it: the bridge from the socket's type-erased
//! [`ErasedChannel`] to the typed trait users implement.

use std::any::Any;

use phx_protocol::Payload;

use super::{Channel, ChannelContext};
use crate::outcome::{HandleResult, JoinResult, TerminateReason};
use crate::socket::{CallbackFuture, ChannelFactory, ErasedChannel, Scope};

struct Adapter<C>(C);

/// The router entry for a channel type: a fresh instance per join.
pub(crate) fn factory<C, F>(make: F) -> ChannelFactory
where
    C: Channel,
    F: Fn() -> C + Send + Sync + 'static,
{
    std::sync::Arc::new(move || Box::new(Adapter(make())) as Box<dyn ErasedChannel>)
}

impl<C: Channel> ErasedChannel for Adapter<C> {
    fn join<'a>(
        &'a mut self,
        topic: &'a str,
        payload: Payload,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, JoinResult> {
        Box::pin(async move {
            let mut ctx = ChannelContext::new(scope);
            self.0.join(topic, payload, &mut ctx).await
        })
    }

    fn handle_in<'a>(
        &'a mut self,
        event: &'a str,
        payload: Payload,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, HandleResult> {
        Box::pin(async move {
            let mut ctx = ChannelContext::new(scope);
            self.0.handle_in(event, payload, &mut ctx).await
        })
    }

    fn handle_out<'a>(
        &'a mut self,
        event: &'a str,
        payload: &'a Payload,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, HandleResult> {
        Box::pin(async move {
            let mut ctx = ChannelContext::new(scope);
            self.0.handle_out(event, payload, &mut ctx).await
        })
    }

    fn handle_info<'a>(
        &'a mut self,
        info: Box<dyn Any + Send>,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, HandleResult> {
        Box::pin(async move {
            // Infos reach an instance only through its own typed `send_info` and
            // `ChannelRef<C::Info>`, so the downcast holds; a mismatch would be a bug
            // here, and is dropped rather than crashing the channel.
            let Ok(info) = info.downcast::<C::Info>() else {
                tracing::error!("info of another type than the channel's Info: dropped");
                return HandleResult::NoReply;
            };
            let mut ctx = ChannelContext::new(scope);
            self.0.handle_info(*info, &mut ctx).await
        })
    }

    fn terminate<'a>(
        &'a mut self,
        reason: TerminateReason,
        scope: Scope<'a>,
    ) -> CallbackFuture<'a, ()> {
        Box::pin(async move {
            let mut ctx = ChannelContext::new(scope);
            self.0.terminate(reason, &mut ctx).await
        })
    }

    fn intercepts(&self) -> &'static [&'static str] {
        self.0.intercepts()
    }
}
