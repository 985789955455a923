"""The video edge beside mail, for the tests of its upload notices (sent to the uploader's
inbox with video's own identity). The ``pair`` fixture runs them: video first.
"""

from __future__ import annotations

from edge_service_mail.app import create_app as create_mail_app
from edge_service_mail.config import MailSettings
from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import Peer, Peers

VIDEO_URL, MAIL_URL = "http://video.test", "http://mail.test"


class Pair(Peers):
    video = Peer("video", create_app, VideoSettings, VIDEO_URL, {"mail_url": MAIL_URL})
    mail = Peer("mail", create_mail_app, MailSettings, MAIL_URL, {"video_url": VIDEO_URL})
