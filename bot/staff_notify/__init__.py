"""Notices for staff (new tickets, tickets gone overdue, residents asking for a
person) posted to the groups staff read: one feed over the store's ticket
events (`feed.NoticeFeed`) and one `feed.StaffNotifier` per kind of group —
the WeCom group robot (`wecom`) and the Telegram staff chat
(`bot.channels.telegram.staff_chat`)."""
