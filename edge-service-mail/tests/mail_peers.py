"""Mail beside the video edge, for the tests of mail's calls to video (a message's video).

The ``pair`` fixture runs them (:class:`gatepass.edgetest.Peers`): mail first.
"""

from __future__ import annotations

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from edge_service_video.app import create_app as create_video_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import Peer, Peers

MAIL_URL, VIDEO_URL = "http://mail.test", "http://video.test"


class Pair(Peers):
    mail = Peer("mail", create_app, MailSettings, MAIL_URL, {"video_url": VIDEO_URL})
    video = Peer("video", create_video_app, VideoSettings, VIDEO_URL, {"mail_url": MAIL_URL})
