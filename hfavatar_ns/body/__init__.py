"""Articulated body models behind one interface (:class:`~hfavatar_ns.body.base.BodyModel`)."""
