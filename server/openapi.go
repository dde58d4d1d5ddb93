package server

import "github.com/gin-gonic/gin"

func (s *Server) openAPI(c *gin.Context) {}
